"""ftcli: compare full fine-tuning with Houlsby adapters on IMDB, SNLI and AG News."""

__version__ = "0.1.0"
