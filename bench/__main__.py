"""`make bench`: every benchmark in turn."""

from bench import event_latency, http_reads, http_rules, registrations, tokens

if __name__ == "__main__":
    tokens.main()
    http_reads.main()
    http_rules.main()
    registrations.main()
    event_latency.main()
