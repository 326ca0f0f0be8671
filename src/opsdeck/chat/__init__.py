"""Chat: rooms, direct messages and their messages, over REST and Socket.IO (docs/chat.md)."""
