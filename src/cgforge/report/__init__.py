"""Reports: figures and a self-contained HTML page comparing a CG model with its AA reference."""
