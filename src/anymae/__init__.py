"""anymae: masked-autoencoder pretraining for any kind of data."""

__version__ = "0.1.0"
