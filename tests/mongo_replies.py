"""A pymongo command listener that counts the documents the server sends back."""

from pymongo import monitoring


class Replies(monitoring.CommandListener):
    """Counts the documents in the server's replies: the values that reach Python."""

    def __init__(self):
        self.documents = 0

    def started(self, event):
        pass

    def succeeded(self, event):
        cursor = event.reply.get("cursor", {})
        self.documents += len(cursor.get("firstBatch", cursor.get("nextBatch", [])))

    def failed(self, event):
        pass
