"""
Colour quantisation of a photo
==============================

A photo of 273,280 pixels uses tens of thousands of distinct colours. K-means
on the pixels' (R, G, B) values finds K colours that stand in for all of
them: every pixel is redrawn in the colour of its cluster's centre. This is the
last example of Jake VanderPlas' K-means notebook, with scikit-learn's
``china.jpg``; :func:`daskmeans.quantize` does it tile by tile, so the same call
works on images far larger than memory (a Zarr image store).
"""

# %%
# The photo and its colours
# -------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_sample_image

import daskmeans

china = load_sample_image("china.jpg")
pixels = china.reshape(-1, 3)
print(china.shape, f"{len(np.unique(pixels, axis=0))} distinct colours")

# %%
# A sample of the pixels in colour space, each drawn in its own colour: the
# colours form a few elongated clouds, which K colours must cover.
rng = np.random.default_rng(0)
sample = pixels[rng.choice(len(pixels), 5000, replace=False)]
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, (a, b) in zip(axes, [(0, 1), (0, 2)], strict=True):
    ax.scatter(sample[:, a], sample[:, b], c=sample / 255, s=2)
    ax.set_xlabel("RGB"[a])
    ax.set_ylabel("RGB"[b])
fig.suptitle("5,000 pixels of china.jpg in colour space")

# %%
# Quantise
# --------
# :func:`daskmeans.quantize` fits the palette with mini-batch K-means on a
# sample of pixels drawn across the whole image, then labels every pixel with
# its nearest palette colour, and measures the PSNR of the result against the
# original (higher is closer).
results = {k: daskmeans.quantize(china, k, sample_size=50_000, random_state=0)
           for k in (8, 64)}

fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
axes[0].imshow(china)
axes[0].set_title("original")
for ax, (k, q) in zip(axes[1:], results.items(), strict=True):
    ax.imshow(q.preview())
    ax.set_title(f"{k} colours, PSNR {q.psnr:.1f} dB")
for ax in axes:
    ax.set_axis_off()

# %%
# The palette
# -----------
# The 64 colours K-means chose, sorted by brightness: most of them are the
# greys and browns the photo is made of.
palette = results[64].palette
order = np.argsort(palette.astype(int).sum(axis=1))
fig, ax = plt.subplots(figsize=(8, 1.2))
ax.imshow(palette[order][None, :, :], aspect="auto")
ax.set_axis_off()
ax.set_title("the 64-colour palette")
