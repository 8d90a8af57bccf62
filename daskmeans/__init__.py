"""daskmeans: distributed, out-of-core K-means on Dask and Zarr."""

from .cluster import BisectingKMeans, KMeans, MiniBatchKMeans, load_model, save_model
from .quantization import QuantizedImage, quantize

__all__ = ["BisectingKMeans", "KMeans", "MiniBatchKMeans", "QuantizedImage", "load_model",
           "quantize", "save_model"]
__version__ = "0.1.0"
