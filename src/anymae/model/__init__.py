from anymae.model.mae import Encoded, MaskedAutoencoder

__all__ = ["Encoded", "MaskedAutoencoder"]
