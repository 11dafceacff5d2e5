"""The shared Trainer loop and offline metrics."""
