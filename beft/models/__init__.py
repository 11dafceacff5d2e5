"""Model loading, bias targets (the role map) and training methods."""
