-- Statistics before readers see the new rows, and the staging tables go.
ANALYZE {live};

ANALYZE {live_rejects};

DROP TABLE IF EXISTS {staging}, {staging_rejects};
