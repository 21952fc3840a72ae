"""The study: a sweep's job files turned into results.csv, study.md, plots, report.html and a W&B study run.
Reads only files on disk; never imports torch, transformers or the job module, so it runs where torch is not
installed (a laptop aggregating a cluster's sweep)."""
