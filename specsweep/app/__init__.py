"""The application: the only code that holds a composed config. A cell is checked and typed once (`cell`), a
sweep is planned before its first job (`plan`), and a job loads, times, scores and writes (`job`, `calls`,
`paired`, `files`, `provenance`); `callbacks` ends a multirun with its study. Only `specsweep.__main__` and the
sweeper plugin import this package; nothing below it receives a DictConfig."""
