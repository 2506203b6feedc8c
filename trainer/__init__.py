"""skelmtl trainer: datasets, models, training, evaluation, export (needs torch)."""
