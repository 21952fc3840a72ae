"""Data: evaluation prompts from datasets (`prompts`, rows read by `sources`), the standard-library corpus, training
text for drafts, output quality and the sandbox that runs model-written code. Never loads a model: a tokenizer is
passed in where truncation needs one."""
