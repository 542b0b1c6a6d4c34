package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// ICEServer is a STUN or TURN server that viewers may use to reach us: the
// server hands it out (WHEP Link headers, RFC 9725 section 4.6) and the player
// page builds its RTCPeerConnection with it. The server itself gathers only
// host candidates (its own addresses and ICEHosts).
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// CheckICEServers reports the first unusable entry: a URL pion cannot parse
// (stun:, stuns:, turn:, turns: as in RFC 7064/7065), a TURN server without
// username and credential, or characters a Link header cannot carry.
func CheckICEServers(list []ICEServer) error {
	for i, s := range list {
		if len(s.URLs) == 0 {
			return fmt.Errorf("ice server %d: no urls", i+1)
		}
		for _, u := range s.URLs {
			uri, err := stun.ParseURI(u)
			if err != nil {
				return fmt.Errorf("ice server %d: url %q: %w (want stun:HOST[:PORT] or turn:HOST[:PORT][?transport=udp|tcp])", i+1, u, err)
			}
			if strings.ContainsAny(u, "<>\" \t\r\n,;") {
				return fmt.Errorf("ice server %d: url %q has a character a Link header cannot carry", i+1, u)
			}
			turn := uri.Scheme == stun.SchemeTypeTURN || uri.Scheme == stun.SchemeTypeTURNS
			if turn && (s.Username == "" || s.Credential == "") {
				return fmt.Errorf("ice server %d: %s is a TURN server: username and credential are required", i+1, u)
			}
		}
		for _, v := range []string{s.Username, s.Credential} {
			if strings.ContainsAny(v, "\r\n") {
				return fmt.Errorf("ice server %d: username and credential must be one line", i+1)
			}
		}
	}
	return nil
}

// ICELinks returns the Link header values of list (RFC 9725 section 4.6):
// one per URL, with username, credential and credential-type for TURN.
func ICELinks(list []ICEServer) []string {
	var out []string
	for _, s := range list {
		for _, u := range s.URLs {
			l := "<" + u + `>; rel="ice-server"`
			if s.Username != "" {
				l += "; username=" + quoteLinkParam(s.Username) + "; credential=" + quoteLinkParam(s.Credential) +
					`; credential-type="password"`
			}
			out = append(out, l)
		}
	}
	return out
}

// quoteLinkParam writes an RFC 8288 quoted-string.
func quoteLinkParam(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// setICELinks adds the ICE servers to a WHEP answer or OPTIONS reply.
func (s *Server) setICELinks(w http.ResponseWriter) {
	for _, l := range ICELinks(s.opts.ICEServers) {
		w.Header().Add("Link", l)
	}
}

// iceListeners are the sockets every viewer shares: one UDP port (ICE UDP mux)
// and the ICE-TCP listener. nil fields: not configured.
type iceListeners struct {
	udp    ice.UDPMux
	tcp    *ice.TCPMuxDefault
	tcpLn  net.Listener
	udpStr string // what the log and errors call them
}

// close releases the shared sockets; sessions must be closed first.
func (l *iceListeners) close() {
	if l == nil {
		return
	}
	if l.udp != nil {
		_ = l.udp.Close()
	}
	if l.tcp != nil {
		_ = l.tcp.Close() // closes tcpLn too
	}
}

// UDPAddrs are the local addresses of the shared UDP port (tests read the port when it was 0).
func (l *iceListeners) UDPAddrs() []net.Addr {
	if l == nil || l.udp == nil {
		return nil
	}
	return l.udp.GetListenAddresses()
}

// listenICE opens the shared sockets of o.
func listenICE(o ServerOptions, keep func(net.IP) bool) (*iceListeners, error) {
	l, err := listenICESockets(o, keep)
	var be *bindError
	if err == nil || !errors.As(err, &be) || !errors.Is(err, syscall.EADDRINUSE) {
		return l, err
	}
	// A default port someone else holds: serve as before rather than not at all.
	switch {
	case o.ICEUDPOptional && be.udp:
		o.Logger.Warn("transport: the default WebRTC UDP port is taken; each viewer gets its own UDP port (set webrtc.udp_listen)",
			"addr", o.ICEUDPListen, "err", err)
		o.ICEUDPListen = ""
	case o.ICETCPOptional && !be.udp:
		o.Logger.Warn("transport: the default ICE-TCP port is taken; no ICE-TCP (set webrtc.tcp_listen)", "addr", o.ICETCPListen, "err", err)
		o.ICETCPListen = ""
	default:
		return nil, err
	}
	return listenICE(o, keep)
}

// bindError is a shared socket that could not be opened (udp: which one).
type bindError struct {
	udp bool
	err error
}

func (e *bindError) Error() string { return e.err.Error() }
func (e *bindError) Unwrap() error { return e.err }

// listenICESockets opens the sockets o asks for.
func listenICESockets(o ServerOptions, keep func(net.IP) bool) (*iceListeners, error) {
	l := &iceListeners{}
	if o.ICEUDPListen != "" {
		host, port, err := splitListen(o.ICEUDPListen)
		if err != nil {
			return nil, fmt.Errorf("transport: WebRTC UDP listen address %q: %w", o.ICEUDPListen, err)
		}
		// The shared socket reads every viewer's RTCP and STUN: ask for room (the
		// kernel caps it at net.core.rmem_max). Its send buffer stays the
		// kernel's default, which paces keyframe bursts as per-viewer sockets
		// did (a 4 MiB one let bursts overflow receivers: docs/bench/webrtc_mux.md).
		const buf = 4 << 20
		ip := net.ParseIP(host)
		if host == "" || (ip != nil && ip.IsUnspecified()) {
			// Every local address, each with this port (pion's way to offer them all).
			opts := []ice.UDPMuxFromPortOption{ice.UDPMuxFromPortWithLoopback(),
				ice.UDPMuxFromPortWithReadBufferSize(buf),
				ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4, ice.NetworkTypeUDP6)}
			if keep != nil {
				opts = append(opts, ice.UDPMuxFromPortWithIPFilter(keep))
			}
			m, err := ice.NewMultiUDPMuxFromPort(port, opts...)
			if err != nil {
				return nil, &bindError{udp: true, err: fmt.Errorf("transport: WebRTC UDP listen address %q: %w", o.ICEUDPListen, err)}
			}
			l.udp = m
		} else {
			addr, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				return nil, fmt.Errorf("transport: WebRTC UDP listen address %q: %w", o.ICEUDPListen, err)
			}
			c, err := net.ListenUDP("udp", addr)
			if err != nil {
				return nil, &bindError{udp: true, err: fmt.Errorf("transport: WebRTC UDP listen address %q: %w", o.ICEUDPListen, err)}
			}
			_ = c.SetReadBuffer(buf)
			l.udp = ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: c})
		}
		var as []string
		for _, a := range l.udp.GetListenAddresses() {
			as = append(as, a.String())
		}
		l.udpStr = strings.Join(as, " ")
	}
	if o.ICETCPListen != "" {
		host, port, err := splitListen(o.ICETCPListen)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("transport: WebRTC TCP listen address %q: %w", o.ICETCPListen, err)
		}
		addr := o.ICETCPListen
		if ip := net.ParseIP(host); keep != nil && (host == "" || (ip != nil && ip.IsUnspecified())) {
			// Loopback-only serving offers loopback candidates only: accept nothing else.
			addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			l.close()
			return nil, &bindError{udp: false, err: fmt.Errorf("transport: WebRTC TCP listen address %q: %w", o.ICETCPListen, err)}
		}
		l.tcpLn = ln
		// ReadBufferSize is in packets (RTCP and STUN only come this way);
		// writes block per viewer, so a slow TCP viewer only stalls its own session.
		l.tcp = ice.NewTCPMuxDefault(ice.TCPMuxParams{Listener: ln, ReadBufferSize: 32})
	}
	return l, nil
}

// splitListen checks host:port with a port 0..65535 (0: any free port, for tests).
func splitListen(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not 0..65535", p)
	}
	return host, port, nil
}

// CheckListen validates a WebRTC listen address as the config file gives it.
func CheckListen(addr string) error {
	_, _, err := splitListen(addr)
	return err
}

// resolveHosts turns ICEHosts (addresses or names) into IP addresses.
func resolveHosts(hosts []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, h := range hosts {
		var ips []net.IP
		if ip := net.ParseIP(h); ip != nil {
			ips = []net.IP{ip}
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			addrs, err := net.DefaultResolver.LookupIPAddr(ctx, h)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("transport: WebRTC host %q: %w", h, err)
			}
			for _, a := range addrs {
				ips = append(ips, a.IP)
			}
		}
		for _, ip := range ips {
			if ip.IsUnspecified() || ip.IsMulticast() {
				return nil, fmt.Errorf("transport: WebRTC host %q: %s is not a unicast address", h, ip)
			}
			if s := ip.String(); !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	if len(hosts) > 0 && len(out) == 0 {
		return nil, errors.New("transport: WebRTC hosts resolved to no address")
	}
	return out, nil
}

// configureICE applies o's network settings to se and returns the shared sockets.
func configureICE(se *webrtc.SettingEngine, o ServerOptions) (*iceListeners, error) {
	var keep func(net.IP) bool
	if o.LoopbackOnly {
		keep = func(ip net.IP) bool { return ip.IsLoopback() }
		se.SetIPFilter(keep)
	}
	hosts, err := resolveHosts(o.ICEHosts)
	if err != nil {
		return nil, err
	}
	if len(hosts) > 0 {
		// Offered beside the local addresses (append), not instead of them,
		// so viewers on the LAN keep their direct path.
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{External: hosts,
			AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteAppend}); err != nil {
			return nil, fmt.Errorf("transport: WebRTC hosts %v: %w", o.ICEHosts, err)
		}
	}
	l, err := listenICE(o, keep)
	if err != nil {
		return nil, err
	}
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if l.udp != nil {
		se.SetICEUDPMux(l.udp)
	} else if o.ICEPortMin > 0 && o.ICEPortMax >= o.ICEPortMin {
		if err := se.SetEphemeralUDPPortRange(o.ICEPortMin, o.ICEPortMax); err != nil {
			l.close()
			return nil, fmt.Errorf("transport: ICE port range %d-%d: %w", o.ICEPortMin, o.ICEPortMax, err)
		}
	}
	if l.tcp != nil {
		se.SetICETCPMux(l.tcp)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	// We only answer: viewers connect to our passive TCP candidates, we dial nobody.
	se.DisableActiveTCP(true)
	se.SetNetworkTypes(networks)
	return l, nil
}
