// socialgate: an example proxy auto-config (PAC) file.
//
// Browsers fetch a PAC file and call FindProxyForURL() for every URL. This
// one sends everything through the gateway, except the intranet.
//
// socialgate can serve an equivalent file itself: set [admin] listen,
// allow, pac_proxy and pac_direct in proxy.ini and point browsers at
// http://GATEWAY:3129/proxy.pac (see socialgate.ini(5)). Use this static
// file instead when the PAC file should come from an ordinary web server,
// for example for WPAD:
//
//   - WPAD by DNS: publish this file as http://wpad.example.com/wpad.dat
//     (Content-Type: application/x-ns-proxy-autoconfig) and let browsers
//     "auto-detect proxy settings". Some browsers (Chrome, Edge) also honour
//     WPAD from DHCP option 252.
//   - Browser policy (preferred, it cannot be switched off by users):
//     Chrome/Edge ProxySettings {"ProxyMode": "pac_script",
//     "ProxyPacUrl": "http://wpad.example.com/wpad.dat"}, Firefox
//     policies.json "Proxy": {"Mode": "autoConfig", "AutoConfigURL": ...,
//     "Locked": true}, Windows GPO/Intune "Use automatic configuration
//     script".
//
// Adjust the three settings below. A PAC file only steers browsers that
// use it: block direct connections and QUIC at the firewall as well
// (contrib/nftables/socialgate.nft), or anyone can go around the gateway.

var GATEWAY = "PROXY gateway.example.com:3128";

// Internal names and networks that do not go through the gateway.
var DIRECT_DOMAINS = [".example.com"];
var DIRECT_NETWORKS = [
    ["10.0.0.0", "255.0.0.0"],
    ["172.16.0.0", "255.240.0.0"],
    ["192.168.0.0", "255.255.0.0"],
    ["127.0.0.0", "255.0.0.0"]
];

function FindProxyForURL(url, host) {
    host = host.toLowerCase();

    // Plain host names ("intranet", "printer") are local.
    if (isPlainHostName(host) || host == "localhost")
        return "DIRECT";

    for (var i = 0; i < DIRECT_DOMAINS.length; i++) {
        var d = DIRECT_DOMAINS[i];
        if (dnsDomainIs(host, d) || host == d.substring(1))
            return "DIRECT";
    }

    // Addresses typed as IPv4 literals are tested without a DNS lookup;
    // names are not resolved here (isInNet on a name costs a DNS lookup in
    // the browser for every URL).
    if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) {
        for (var k = 0; k < DIRECT_NETWORKS.length; k++) {
            if (isInNet(host, DIRECT_NETWORKS[k][0], DIRECT_NETWORKS[k][1]))
                return "DIRECT";
        }
    }

    // Everything else through the gateway. There is deliberately no
    // "; DIRECT" fallback: with one, browsers would bypass the policy
    // whenever the gateway does not answer. For redundancy, list a second
    // gateway instead: "PROXY gw1.example.com:3128; PROXY gw2.example.com:3128".
    return GATEWAY;
}
