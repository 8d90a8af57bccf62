"""daskmeans: distributed, out-of-core K-means on Dask and Zarr."""

from .cluster import KMeans

__all__ = ["KMeans"]
__version__ = "0.1.0"
