package controller

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/hanode/hanode/adminapi"
	"github.com/hanode/hanode/agent/state"
	"github.com/hanode/hanode/config"
	"github.com/hanode/hanode/internal/service"
)

// agentRoutes registers the admin API of the machines' agents: their desired and reported
// state (readonly) and the changes of the desired state (operator, audited): start, stop and
// restart one role, add and remove roles.
func (c *Role) agentRoutes(read func(string, http.HandlerFunc) http.Handler, write func(string, http.HandlerFunc) http.Handler, readonly, operator string) {
	mux := c.srv.Mux
	mux.Handle("GET /v1/agents", read(readonly, c.handleAgents))
	mux.Handle("GET /v1/nodes/{id}/roles", read(readonly, c.handleAgent))
	mux.Handle("POST /v1/nodes/{id}/roles", write(operator, c.handleRolesChange))
	mux.Handle("POST /v1/nodes/{id}/roles/{role}/{action}", write(operator, c.handleRoleAction))
}

func (c *Role) handleAgents(w http.ResponseWriter, r *http.Request) {
	list, err := state.List(r.Context(), c.cli)
	if err != nil {
		service.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, adminapi.Agents{Machines: list})
}

func (c *Role) handleAgent(w http.ResponseWriter, r *http.Request) {
	m, err := state.Get(r.Context(), c.cli, r.PathValue("id"))
	if err != nil {
		writeAgentError(w, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, m)
}

func writeAgentError(w http.ResponseWriter, err error) {
	var bad badRequest
	switch {
	case errors.Is(err, state.ErrNoAgent):
		service.WriteError(w, http.StatusNotFound, err)
	case errors.As(err, &bad):
		service.WriteError(w, bad.status, err)
	default:
		service.WriteError(w, http.StatusServiceUnavailable, err)
	}
}

type badRequest struct {
	error
	status int
}

// supervisable checks that role is one an agent runs.
func supervisable(role string) error {
	if role == config.RoleAgent || !slices.Contains(config.AllRoles, role) {
		return badRequest{fmt.Errorf("role %q: allowed: controller, datanode, coordinator, proxy", role), http.StatusBadRequest}
	}
	return nil
}

// handleRoleAction starts, stops or restarts one role of a machine by changing its desired
// state; the machine's agent acts on it.
func (c *Role) handleRoleAction(w http.ResponseWriter, r *http.Request) {
	machine, role, action := r.PathValue("id"), r.PathValue("role"), r.PathValue("action")
	if err := supervisable(role); err != nil {
		writeAgentError(w, err)
		return
	}
	if action != "start" && action != "stop" && action != "restart" {
		service.WriteError(w, http.StatusNotFound, fmt.Errorf("action %q: allowed: start, stop, restart", action))
		return
	}
	d, err := state.Update(r.Context(), c.cli, machine, principal(r), func(d *state.Desired) error {
		want := d.Role(role)
		if want == nil {
			return badRequest{fmt.Errorf("machine %s has no %s role (add it with `hanode node roles %s +%s`)", machine, role, machine, role), http.StatusNotFound}
		}
		switch action {
		case "start":
			want.Run = true
		case "stop":
			want.Run = false
		case "restart":
			want.Run = true
			want.Restart++
		}
		return nil
	})
	if err != nil {
		writeAgentError(w, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, state.Machine{Machine: machine, Desired: d})
}

// handleRolesChange adds roles to a machine (to run) and removes others (the agent stops
// them). A controller is neither added nor removed this way: etcd membership changes go
// through joins and `hanode node remove`.
func (c *Role) handleRolesChange(w http.ResponseWriter, r *http.Request) {
	machine := r.PathValue("id")
	var req adminapi.RolesChange
	if err := decodeBody(r, &req); err != nil {
		service.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if len(req.Add)+len(req.Remove) == 0 {
		service.WriteError(w, http.StatusBadRequest, errors.New("nothing to change: name roles to add or remove"))
		return
	}
	for _, role := range append(slices.Clone(req.Add), req.Remove...) {
		if err := supervisable(role); err != nil {
			writeAgentError(w, err)
			return
		}
		if role == config.RoleController {
			writeAgentError(w, badRequest{errors.New("a controller is added by joining the machine as one and removed with `hanode node remove`, not through its agent"), http.StatusConflict})
			return
		}
		if slices.Contains(req.Add, role) && slices.Contains(req.Remove, role) {
			writeAgentError(w, badRequest{fmt.Errorf("role %s is both added and removed", role), http.StatusBadRequest})
			return
		}
	}
	d, err := state.Update(r.Context(), c.cli, machine, principal(r), func(d *state.Desired) error {
		for _, role := range req.Add {
			if d.Role(role) == nil {
				d.Roles = append(d.Roles, state.Want{Role: role, Run: true})
			}
		}
		d.Roles = slices.DeleteFunc(d.Roles, func(w state.Want) bool { return slices.Contains(req.Remove, w.Role) })
		// Keep the record in start order.
		slices.SortStableFunc(d.Roles, func(a, b state.Want) int {
			return slices.Index(config.AllRoles, a.Role) - slices.Index(config.AllRoles, b.Role)
		})
		return nil
	})
	if err != nil {
		writeAgentError(w, err)
		return
	}
	service.WriteJSON(w, http.StatusOK, state.Machine{Machine: machine, Desired: d})
}
