"""Running a job's stages and writing its folder (the job's one record): evaluate or predict."""
