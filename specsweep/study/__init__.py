"""The study: a sweep's job files turned into results.csv, study.md, plots, report.html and a W&B study run.

`aggregate` reads the jobs (and `published` a paper's table) into one tidy table; `cells` selects and groups its
cells; `predict` and `diagnose` give each cell its prediction and its flag; `tables` and `pairs` build the tables,
`format` writes their numbers, and `document` orders them into study.md; `plots`, `report` and `dashboard` make the
plots, report.html and the W&B run.

Reads only files on disk; never imports torch, transformers or `specsweep.app` (the job), so it runs where torch is
not installed (a laptop aggregating a cluster's sweep)."""
