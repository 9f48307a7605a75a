package server

import (
	"errors"
	"strconv"
	"time"
)

// schedule is a SUBMIT_JOB_SCHED cron-like time: minute, hour, day of
// month, month, day of week, each a number or "*" (empty also means
// any). Day of week counts from 0 = Monday, as the protocol document
// says. gearmand parses these packets but never implemented them; here
// a scheduled job runs at every matching minute until cancelled.
type schedule struct {
	minute, hour, mday, month, wday int // -1 = any
}

var errSchedule = errors.New("SUBMIT_JOB_SCHED fields must be '*' or numbers: minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-6 (0 = Monday)")

func parseSchedule(fields [][]byte) (*schedule, error) {
	if len(fields) != 5 {
		return nil, errSchedule
	}
	var v [5]int
	bounds := [5][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 6}}
	for i, f := range fields {
		if len(f) == 0 || string(f) == "*" {
			v[i] = -1
			continue
		}
		n, err := strconv.Atoi(string(f))
		if err != nil || n < bounds[i][0] || n > bounds[i][1] {
			return nil, errSchedule
		}
		v[i] = n
	}
	return &schedule{minute: v[0], hour: v[1], mday: v[2], month: v[3], wday: v[4]}, nil
}

func (s *schedule) matches(t time.Time) bool {
	wday := (int(t.Weekday()) + 6) % 7 // Monday = 0
	return (s.minute < 0 || t.Minute() == s.minute) &&
		(s.hour < 0 || t.Hour() == s.hour) &&
		(s.mday < 0 || t.Day() == s.mday) &&
		(s.month < 0 || int(t.Month()) == s.month) &&
		(s.wday < 0 || wday == s.wday)
}

// next returns the first whole minute strictly after now that matches,
// searching up to about four years ahead (enough for 29 February). A
// schedule that never matches (31 February) yields a time far away.
func (s *schedule) next(now time.Time) time.Time {
	t := now.Truncate(time.Minute).Add(time.Minute)
	limit := t.AddDate(4, 1, 0)
	for t.Before(limit) {
		switch {
		case s.month >= 0 && int(t.Month()) != s.month:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, t.Location())
		case (s.mday >= 0 && t.Day() != s.mday) || (s.wday >= 0 && (int(t.Weekday())+6)%7 != s.wday):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, t.Location())
		case s.hour >= 0 && t.Hour() != s.hour:
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, t.Location())
		case s.minute >= 0 && t.Minute() != s.minute:
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return limit
}
