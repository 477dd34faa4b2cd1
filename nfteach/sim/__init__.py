"""The simulator: a pure-Python model of Netfilter and conntrack for named kernel versions."""
