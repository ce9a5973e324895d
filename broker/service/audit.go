package service

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/legalmfa/mfa/audit"
)

// AuditDir is the audit trail's directory inside a data directory. Each
// replica keeps its own chain in its own data directory: one file written
// by several processes could not be a chain.
func AuditDir(dataDir string) string { return filepath.Join(dataDir, "audit") }

// openAudit opens the audit trail, continuing its chain.
func (s *Service) openAudit() error {
	w, err := audit.Open(AuditDir(s.cfg.DataDir),
		audit.WithMaxFileBytes(s.cfg.AuditRotateSize),
		audit.WithLogger(s.log.With("component", "audit")))
	if err != nil {
		return err
	}
	s.trail = w
	return nil
}

// auditReady reports not ready once the trail takes no more events: a
// load balancer then sends decisions to replicas that record them.
func (s *Service) auditReady(context.Context) error {
	if err := s.trail.Err(); err != nil {
		return fmt.Errorf("audit trail: %w", err)
	}
	return nil
}

// closeAudit closes the trail, after everything that records in it.
func (s *Service) closeAudit() {
	if s.trail == nil {
		return
	}
	if err := s.trail.Close(); err != nil {
		s.log.Error("close the audit trail", "err", err)
	}
	s.trail = nil
}
