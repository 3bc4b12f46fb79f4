"""Loopback stand-ins for the hosted services, speaking each one's documented wire format."""
