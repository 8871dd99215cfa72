COPY source_rows ({columns}) FROM STDIN;
