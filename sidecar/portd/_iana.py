"""Ports that a well-known service owns, for the plan checker's "someone else's port" warning.

Each entry is port -> (the name shown in the warning, other names that mean the same service).
The plan checker normalises both sides (lower case, punctuation dropped), so a service called
"postgres" or "postgres16" planned on 5432 is that service and draws no warning, while
"auth-service" on 5432 does.

The names come from the IANA service-name registry where the registered service is what people
actually run there. Where IANA registered a port for something long dead but one program's default
is what collides in practice (9090 is IANA's "websm", everyone's Prometheus), the entry names that
program instead and says so: the warning is about a collision a developer will meet, not about
paperwork. Ports that several popular programs claim with no clear owner (8000, 9001, 50051) are
left out, since any warning there would be noise.
"""

IANA_PORTS: dict[int, tuple[str, tuple[str, ...]]] = {
    20: ("ftp-data", ("ftp",)),
    21: ("ftp", ("vsftpd", "proftpd")),
    22: ("ssh", ("sshd", "openssh", "sftp")),
    23: ("telnet", ()),
    25: ("smtp", ("mail", "postfix", "exim", "mta")),
    53: ("domain", ("dns", "bind", "coredns", "dnsmasq", "unbound")),
    67: ("bootps", ("dhcp", "dhcpd")),
    69: ("tftp", ()),
    80: ("http", ("www", "web", "nginx", "apache", "httpd", "caddy", "traefik")),
    88: ("kerberos", ("krb5", "kdc")),
    110: ("pop3", ("mail",)),
    123: ("ntp", ("ntpd", "chrony")),
    143: ("imap", ("mail", "dovecot")),
    161: ("snmp", ()),
    389: ("ldap", ("openldap", "slapd")),
    443: ("https", ("http", "www", "web", "tls", "nginx", "apache", "httpd", "caddy", "traefik")),
    445: ("microsoft-ds", ("smb", "samba", "cifs")),
    465: ("submissions", ("smtps", "smtp", "mail")),
    514: ("syslog", ("rsyslog", "syslog-ng")),
    554: ("rtsp", ()),
    587: ("submission", ("smtp", "mail")),
    636: ("ldaps", ("ldap", "openldap", "slapd")),
    873: ("rsync", ("rsyncd",)),
    993: ("imaps", ("imap", "mail", "dovecot")),
    995: ("pop3s", ("pop3", "mail")),
    1080: ("socks", ("socks5", "proxy")),
    1194: ("openvpn", ("vpn",)),
    1433: ("ms-sql-s", ("mssql", "sqlserver")),
    # IANA: ncube-lm; in practice the Oracle listener.
    1521: ("oracle", ("oracledb", "tns")),
    1883: ("mqtt", ("mosquitto", "emqx")),
    1935: ("rtmp", ("srs", "nginx-rtmp")),
    2049: ("nfs", ("nfsd",)),
    # IANA: eforward; in practice ZooKeeper.
    2181: ("zookeeper", ("zk",)),
    2375: ("docker", ("dockerd", "docker-api")),
    2376: ("docker-s", ("docker", "dockerd")),
    2379: ("etcd-client", ("etcd",)),
    2380: ("etcd-server", ("etcd",)),
    # IANA: hbci; in practice Grafana (and many Node dev servers, which is why it collides).
    3000: ("grafana", ()),
    3100: ("loki", ()),
    3306: ("mysql", ("mariadb", "percona")),
    3389: ("ms-wbt-server", ("rdp",)),
    3478: ("stun", ("turn", "coturn", "livekit")),
    4222: ("nats", ("nats-server", "jetstream")),
    4317: ("otlp-grpc", ("otlp", "otel", "opentelemetry")),
    4318: ("otlp-http", ("otlp", "otel", "opentelemetry")),
    4369: ("epmd", ("erlang", "rabbitmq")),
    # IANA: commplex-main; macOS 12+ runs its AirPlay Receiver on 5000 and 7000, so a dev
    # server planned there fails to start on most Macs.
    5000: ("airplay", ("airplay-receiver", "controlcenter")),
    5060: ("sip", ("asterisk", "freeswitch", "kamailio")),
    5222: ("xmpp-client", ("xmpp", "jabber", "ejabberd", "prosody")),
    5269: ("xmpp-server", ("xmpp", "jabber", "ejabberd", "prosody")),
    5353: ("mdns", ("bonjour", "avahi")),
    5432: ("postgresql", ("postgres", "pg", "pgsql", "postgis", "timescaledb")),
    5555: ("adb", ("android",)),
    5601: ("kibana", ("opensearch-dashboards",)),
    5671: ("amqps", ("amqp", "rabbitmq", "rabbit")),
    5672: ("amqp", ("rabbitmq", "rabbit", "activemq", "qpid")),
    5900: ("rfb", ("vnc",)),
    5984: ("couchdb", ("couch",)),
    6000: ("x11", ("xorg", "xserver")),
    6222: ("nats-cluster", ("nats", "nats-server")),
    6379: ("redis", ("valkey", "keydb", "dragonfly")),
    6432: ("pgbouncer", ()),
    6443: ("kubernetes-api", ("kubernetes", "kube-apiserver", "k8s", "k3s")),
    6650: ("pulsar", ()),
    6667: ("ircd", ("irc",)),
    7000: ("airplay", ("airplay-receiver", "controlcenter")),
    7474: ("neo4j", ()),
    7687: ("neo4j-bolt", ("neo4j", "bolt")),
    7880: ("livekit", ()),
    8080: ("http-alt", ("http", "web", "www", "proxy", "tomcat", "jenkins")),
    8086: ("influxdb", ("influx",)),
    8123: ("clickhouse-http", ("clickhouse",)),
    8125: ("statsd", ()),
    8161: ("activemq-console", ("activemq",)),
    # IANA: trivnet1 / fmtp / ...; in practice HashiCorp Vault and Consul.
    8200: ("vault", ()),
    8222: ("nats-monitoring", ("nats", "nats-server")),
    8300: ("consul-server", ("consul",)),
    8443: ("https-alt", ("https", "http", "web", "tls", "proxy")),
    8500: ("consul", ()),
    8600: ("consul-dns", ("consul",)),
    8883: ("secure-mqtt", ("mqtt", "mosquitto", "emqx")),
    8888: ("jupyter", ("jupyterlab", "notebook")),
    8983: ("solr", ()),
    # IANA: cslistener; in practice MinIO's API (and php-fpm, ClickHouse's native protocol).
    9000: ("minio", ("php-fpm", "clickhouse", "sonarqube")),
    9042: ("cassandra", ("cql", "scylla", "scylladb")),
    # IANA: websm / xmltec-xmlmail; in practice Prometheus and its Pushgateway.
    9090: ("prometheus", ("cockpit",)),
    9091: ("prometheus-pushgateway", ("pushgateway", "transmission")),
    9092: ("kafka", ("redpanda",)),
    9093: ("alertmanager", ()),
    # IANA: hp-pdl-datastrm (JetDirect printing); in practice also Prometheus' node_exporter.
    9100: ("node-exporter", ("jetdirect", "printer")),
    9200: ("elasticsearch", ("elastic", "opensearch", "es")),
    9300: ("elasticsearch-transport", ("elasticsearch", "elastic", "opensearch", "es")),
    9411: ("zipkin", ()),
    9418: ("git", ("git-daemon",)),
    10250: ("kubelet", ()),
    11211: ("memcache", ("memcached",)),
    11434: ("ollama", ()),
    14250: ("jaeger-grpc", ("jaeger",)),
    14268: ("jaeger-collector", ("jaeger",)),
    15672: ("rabbitmq-management", ("rabbitmq", "rabbit")),
    16686: ("jaeger-query", ("jaeger", "jaeger-ui")),
    26257: ("cockroachdb", ("cockroach", "crdb")),
    27017: ("mongodb", ("mongo", "mongod")),
    28015: ("rethinkdb", ("rethink",)),
    51820: ("wireguard", ("wg",)),
    61616: ("activemq", ()),
}
