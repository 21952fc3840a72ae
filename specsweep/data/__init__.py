"""Data: evaluation prompts from datasets, the standard-library corpus, output quality and the sandbox that runs
model-written code. Never loads a model: a tokenizer is passed in where truncation needs one."""
