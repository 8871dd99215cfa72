COPY {source} ({columns}) FROM STDIN;
