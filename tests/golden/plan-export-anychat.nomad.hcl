# Nomad job from ports.toml: a group per service, each planned port a static port.
# Paste the network blocks into your own job, or run this one with a variable file
# that gives each group's image, images = { "GROUP" = "IMAGE", ... }:
#   nomad job run -var-file=images.vars.hcl THIS_FILE

variable "images" {
  type        = map(string)
  description = "The container image of each group, by group name."
}

job "anychat" {
  group "postgres" {
    network {
      port "database" {
        static = 5432
      }
    }

    task "postgres" {
      driver = "docker"

      config {
        image = var.images["postgres"]
        ports = ["database"]
      }
    }
  }

  group "redis" {
    network {
      port "cache" {
        static = 6379
      }
    }

    task "redis" {
      driver = "docker"

      config {
        image = var.images["redis"]
        ports = ["cache"]
      }
    }
  }

  group "nats" {
    network {
      port "client" {
        static = 4222
      }
      port "monitoring" {
        static = 8222
      }
    }

    task "nats" {
      driver = "docker"

      config {
        image = var.images["nats"]
        ports = ["client", "monitoring"]
      }
    }
  }

  group "minio" {
    network {
      port "api" {
        static = 9000
      }
      port "console" {
        static = 9091
      }
    }

    task "minio" {
      driver = "docker"

      config {
        image = var.images["minio"]
        ports = ["api", "console"]
      }
    }
  }

  group "gateway-service" {
    network {
      port "http" {
        static = 8080
      }
    }

    task "gateway-service" {
      driver = "docker"

      config {
        image = var.images["gateway-service"]
        ports = ["http"]
      }
    }
  }

  group "auth-service" {
    network {
      port "http" {
        static = 8001
      }
      port "grpc" {
        static = 9001
      }
    }

    task "auth-service" {
      driver = "docker"

      config {
        image = var.images["auth-service"]
        ports = ["http", "grpc"]
      }
    }
  }

  group "user-service" {
    network {
      port "http" {
        static = 8002
      }
      port "grpc" {
        static = 9002
      }
    }

    task "user-service" {
      driver = "docker"

      config {
        image = var.images["user-service"]
        ports = ["http", "grpc"]
      }
    }
  }

  group "friend-service" {
    network {
      port "http" {
        static = 8003
      }
      port "grpc" {
        static = 9003
      }
    }

    task "friend-service" {
      driver = "docker"

      config {
        image = var.images["friend-service"]
        ports = ["http", "grpc"]
      }
    }
  }

  group "group-service" {
    network {
      port "http" {
        static = 8004
      }
      port "grpc" {
        static = 9004
      }
    }

    task "group-service" {
      driver = "docker"

      config {
        image = var.images["group-service"]
        ports = ["http", "grpc"]
      }
    }
  }

  group "message-service" {
    network {
      port "http" {
        static = 8005
      }
      port "grpc" {
        static = 9005
      }
    }

    task "message-service" {
      driver = "docker"

      config {
        image = var.images["message-service"]
        ports = ["http", "grpc"]
      }
    }
  }

  group "session-service" {
    network {
      port "http" {
        static = 8006
      }
      port "grpc" {
        static = 9006
      }
    }

    task "session-service" {
      driver = "docker"

      config {
        image = var.images["session-service"]
        ports = ["http", "grpc"]
      }
    }
  }

  group "file-service" {
    network {
      port "http" {
        static = 8007
      }
      port "grpc" {
        static = 9007
      }
    }

    task "file-service" {
      driver = "docker"

      config {
        image = var.images["file-service"]
        ports = ["http", "grpc"]
      }
    }
  }

  group "push-service" {
    network {
      port "http" {
        static = 8008
      }
      port "grpc" {
        static = 9008
      }
    }

    task "push-service" {
      driver = "docker"

      config {
        image = var.images["push-service"]
        ports = ["http", "grpc"]
      }
    }
  }

  group "rtc-service" {
    network {
      port "http" {
        static = 8009
      }
      port "grpc" {
        static = 9009
      }
    }

    task "rtc-service" {
      driver = "docker"

      config {
        image = var.images["rtc-service"]
        ports = ["http", "grpc"]
      }
    }
  }

  group "sync-service" {
    network {
      port "http" {
        static = 8010
      }
      port "grpc" {
        static = 9010
      }
    }

    task "sync-service" {
      driver = "docker"

      config {
        image = var.images["sync-service"]
        ports = ["http", "grpc"]
      }
    }
  }

  group "admin-service" {
    network {
      port "http" {
        static = 8011
      }
      port "grpc" {
        static = 9011
      }
    }

    task "admin-service" {
      driver = "docker"

      config {
        image = var.images["admin-service"]
        ports = ["http", "grpc"]
      }
    }
  }

  group "prometheus" {
    network {
      port "http" {
        static = 9090
      }
    }

    task "prometheus" {
      driver = "docker"

      config {
        image = var.images["prometheus"]
        ports = ["http"]
      }
    }
  }

  group "grafana" {
    network {
      port "http" {
        static = 3000
      }
    }

    task "grafana" {
      driver = "docker"

      config {
        image = var.images["grafana"]
        ports = ["http"]
      }
    }
  }

  group "jaeger" {
    network {
      port "ui" {
        static = 16686
      }
      port "collector" {
        static = 14268
      }
    }

    task "jaeger" {
      driver = "docker"

      config {
        image = var.images["jaeger"]
        ports = ["ui", "collector"]
      }
    }
  }

  group "metrics" {
    network {
      port "metrics" {
        static = 2112
      }
    }

    task "metrics" {
      driver = "docker"

      config {
        image = var.images["metrics"]
        ports = ["metrics"]
      }
    }
  }

  group "livekit" {
    network {
      port "ws" {
        static = 7880
      }
    }

    task "livekit" {
      driver = "docker"

      config {
        image = var.images["livekit"]
        ports = ["ws"]
      }
    }
  }
}

# Where these services run outside Nomad on a host, its client's agent configuration
# can keep Nomad from giving their ports to any task. Not on the clients that run the
# job above: Nomad never places a static port the client reserves.
# client {
#   reserved {
#     reserved_ports = "2112,3000,4222,5432,6379,7880,8001-8011,8080,8222,9000-9011,9090-9091,14268,16686"
#   }
# }
