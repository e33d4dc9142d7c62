"""The HTTP side of the daemon: the API (/v1), the operators' dashboard (/ui), metrics and health."""
