"""What characters remember: the chat history store."""
