package bus

// Subjects of durable jobs (package jobs). A job id is a single subject
// token: lower-case letters and digits.
const (
	// JobSubmitPrefix starts script.job.submit.<name>: body as a run's,
	// plus an optional "timeout"; headers Idempotency-Key and
	// X-Callback-Url; reply: the job.
	JobSubmitPrefix = "script.job.submit."
	// JobGetPrefix starts script.job.get.<id>; reply: the job.
	JobGetPrefix = "script.job.get."
	// JobCancelPrefix starts script.job.cancel.<id>; reply: the job.
	JobCancelPrefix = "script.job.cancel."
	// JobListSubject answers {"jobs": [...]}, newest first; body
	// {"script","status","limit"}, each optional.
	JobListSubject = "script.job.list"
	// JobEventPrefix starts script.job.event.<name>.<id>: the job JSON,
	// published on every change of its state.
	JobEventPrefix = "script.job.event."
	// JobOutputPrefix starts script.job.output.<id>.stdout and .stderr:
	// the raw chunks of a job's output as it runs, each with the header
	// X-Scripthost-Attempt, kept with the events (JobEventsStream) so that
	// they can be replayed.
	JobOutputPrefix = "script.job.output."
	// JobsQueue is the queue group of the job services.
	JobsQueue = "scripthost-jobs"

	// JobQueuePrefix starts scripthost.jobs.queue.<name>: the work-queue
	// stream's subjects, one message per job to run.
	JobQueuePrefix = "scripthost.jobs.queue."
	// JobKillPrefix starts scripthost.jobs.kill.<id>: the node running
	// the job kills it (a cancel).
	JobKillPrefix = "scripthost.jobs.kill."
	// JobCallbackSubject carries finished jobs to POST to their callback.
	JobCallbackSubject = "scripthost.jobs.callback"

	// JetStream names.
	JobsStream        = "SCRIPTHOST_JOBS"
	JobsConsumer      = "scripthost-job-workers"
	JobsBucket        = "scripthost-jobs"
	JobEventsStream   = "SCRIPTHOST_JOB_EVENTS"
	CallbacksStream   = "SCRIPTHOST_JOB_CALLBACKS"
	CallbacksConsumer = "scripthost-job-callbacks"
)

// Headers of a job submit, on HTTP and on the bus alike.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderCallbackURL    = "X-Callback-Url"
)

// JobSubmitSubject is the subject that submits a job of the named script.
func JobSubmitSubject(name string) string { return JobSubmitPrefix + name }

// JobGetSubject is the subject that reads a job.
func JobGetSubject(id string) string { return JobGetPrefix + id }

// JobCancelSubject is the subject that cancels a job.
func JobCancelSubject(id string) string { return JobCancelPrefix + id }

// JobEventSubject is the subject of a job's state changes.
func JobEventSubject(name, id string) string { return JobEventPrefix + name + "." + id }

// JobOutputSubject is the subject of a job's output chunks on stream
// ("stdout" or "stderr").
func JobOutputSubject(id, stream string) string { return JobOutputPrefix + id + "." + stream }

// HeaderAttempt on a job's output chunk is the attempt it comes from.
const HeaderAttempt = "X-Scripthost-Attempt"

// HeaderJobRevision is on every job event: the revision of the job's
// record that the event tells of. A job's events may arrive out of order
// (they are published by different processes); a higher revision is a
// later state, and the one with the highest revision is the job's latest.
const HeaderJobRevision = "X-Scripthost-Job-Revision"
