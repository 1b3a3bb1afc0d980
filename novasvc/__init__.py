"""
novasvc: the Nova service framework (Service, Manager, Driver) as a Twisted
daemon, speaking the oslo.messaging RabbitMQ wire format.
"""

__version__ = "0.1.0"
