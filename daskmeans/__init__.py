"""daskmeans: distributed, out-of-core K-means on Dask and Zarr."""

from .cluster import KMeans, MiniBatchKMeans

__all__ = ["KMeans", "MiniBatchKMeans"]
__version__ = "0.1.0"
