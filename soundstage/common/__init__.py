"""Small utilities every part shares: audio file I/O, the config + safetensors component mixin, seeding."""
