"""The socket side: accepting WebSocket connections, one connection's reader and writer, HTTP routes."""
