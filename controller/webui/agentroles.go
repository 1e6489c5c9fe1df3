package webui

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/hanode/hanode/agent/state"
)

// The machine page's roles supervised by the machine's agent: each role's desired and actual
// state, and (operators) start, stop and restart buttons, each the admin API call behind it.

// roleActions are the buttons of a supervised role.
var roleActions = map[string]bool{"start": true, "stop": true, "restart": true}

// agentView is the machine's supervised roles: its desired state, and what its agent reports.
type agentView struct {
	Desired *state.Desired
	Actual  *state.Actual // nil while the agent is down
	Rows    []agentRow
}

// agentRow is one role: desired to run or not, and the agent's report of it when there is one.
type agentRow struct {
	Role     string
	Run      bool
	Reported bool
	state.RoleState
}

// agentState is the machine's agent view, or nil when no agent ever recorded its roles.
func (u *UI) agentState(r *http.Request, v *viewer, name string) *agentView {
	var m state.Machine
	if err := u.call(r, v, http.MethodGet, "/v1/nodes/"+url.PathEscape(name)+"/roles", nil, &m); err != nil || m.Desired == nil {
		return nil
	}
	av := &agentView{Desired: m.Desired, Actual: m.Actual}
	seen := map[string]bool{}
	for _, w := range m.Desired.Roles {
		row := agentRow{Role: w.Role, Run: w.Run}
		if m.Actual != nil {
			if rs := m.Actual.Role(w.Role); rs != nil {
				row.Reported, row.RoleState = true, *rs
			}
		}
		seen[w.Role] = true
		av.Rows = append(av.Rows, row)
	}
	if m.Actual != nil { // roles removed from the desired state whose process still runs
		for _, rs := range m.Actual.Roles {
			if !seen[rs.Role] {
				av.Rows = append(av.Rows, agentRow{Role: rs.Role, Reported: true, RoleState: rs})
			}
		}
	}
	return av
}

// roleAction runs a role button: POST /v1/nodes/{name}/roles/{role}/{action}.
func (u *UI) roleAction(w http.ResponseWriter, r *http.Request, v *viewer) {
	name, role, action := r.PathValue("name"), r.PathValue("role"), r.PathValue("action")
	if !roleActions[action] {
		http.NotFound(w, r)
		return
	}
	path := "/v1/nodes/" + url.PathEscape(name) + "/roles/" + url.PathEscape(role) + "/" + action
	if err := u.call(r, v, http.MethodPost, path, nil, nil); err != nil {
		if u.signedOut(err, v) {
			http.Redirect(w, r, "/signin", http.StatusSeeOther)
			return
		}
		d, derr := u.machineData(r, v)
		if derr != nil {
			u.fail(w, r, v, err)
			return
		}
		d.Error = action + " " + role + " refused: " + err.Error()
		status := http.StatusServiceUnavailable
		var ae *apiError
		if errors.As(err, &ae) {
			status = ae.Status
		}
		u.render(w, r, status, "machine", v, d)
		return
	}
	http.Redirect(w, r, "/machines/"+url.PathEscape(name)+"?done="+url.QueryEscape(action+"-"+role), http.StatusSeeOther)
}

// roleDone is the notice after a role button worked.
func roleDone(done string) string {
	for action := range roleActions {
		for _, role := range []string{"controller", "datanode", "coordinator", "proxy"} {
			if done == action+"-"+role {
				return "Asked the agent to " + action + " the " + role + "; the table below shows when it has."
			}
		}
	}
	return ""
}
