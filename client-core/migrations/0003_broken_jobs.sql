-- A job whose document does not decode (written by a buggy peer before the server repaired
-- such changes) stays in the job list, marked broken with the reasons, instead of vanishing.
ALTER TABLE q_jobs ADD COLUMN broken TEXT;
