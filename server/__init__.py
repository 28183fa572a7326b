"""The ranking server's Kafka side: the params loader, the labelled-example window and
the dense validation gate it feeds, the impression logger, and an HTTP client for the
ranking API.

They read and write Kafka through the ground (:mod:`freshet.kafka`, :mod:`freshet.topics`);
the tables they fill are the library's (:mod:`ps.serving`), which knows nothing of Kafka.
``jobs/serve.py`` is the process."""
