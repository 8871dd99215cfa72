COPY source_keys (_id) FROM STDIN;
