COPY {staging_rejects} (_id, reason, document, page) FROM STDIN;
