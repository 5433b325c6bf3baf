//! Per-worker shards: counters written by one worker, read at scrape.
