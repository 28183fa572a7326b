"""The roof: what a user runs. The ``freshet`` command (:mod:`freshet.app.cli`),
submitting jobs to a Flink cluster (:mod:`freshet.app.submit`) and the demo."""
