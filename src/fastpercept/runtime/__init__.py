"""Running models, without PyTorch: backends and runners, tiling, colour, images, video, batches, export."""
