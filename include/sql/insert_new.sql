INSERT INTO {live} ({columns})
SELECT {columns} FROM {staging} AS staged
WHERE NOT EXISTS (SELECT FROM {live} AS live WHERE ({live_key}) = ({staged_key}));
