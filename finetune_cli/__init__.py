"""ftcli: full fine-tuning vs adapters, LoRA and other parameter-efficient methods, measured on your own data."""

__version__ = "0.1.0"
