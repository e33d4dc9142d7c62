"""transferbot: email-driven approval of cloud-marketplace entitlement transfers."""

__version__ = "0.1.0"
