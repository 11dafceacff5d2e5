"""Tasks, their data sources (hub or local original files), regime subsets and tokenised features."""
