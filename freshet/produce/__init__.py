"""Event producers: replay a data set, or generate a synthetic stream, onto Kafka."""
