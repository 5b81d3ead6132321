"""Small utilities every part shares: audio file I/O and resampling, the STFT, numpy/torch argument conversion,
the config + safetensors component mixin, the frozen text encoder and command-line config overrides."""
