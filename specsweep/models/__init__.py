"""Models: model families (hub ids, local directories, the embedded family built offline), and the optimisation
switches that decide how each model is loaded and prepared. Knows nothing of Hydra, datasets or the study."""
