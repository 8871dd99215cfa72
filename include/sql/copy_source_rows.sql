COPY {read_again} ({columns}) FROM STDIN;
