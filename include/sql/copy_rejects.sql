COPY {rejects} (_id, reason, document, page) FROM STDIN;
