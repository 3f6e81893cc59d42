#!/bin/sh
# Entrypoint of items-platform/mariadb: on first start, initialise /var/lib/mysql and create the
# database and users named by the environment (the official images' variables), then run
# mariadbd. Any other command runs as given.
set -eu

if [ "${1:-}" != "mariadbd" ]; then
    exec "$@"
fi
shift

datadir=/var/lib/mysql
root_password="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
allow_empty="${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
database="${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}"
user="${MARIADB_USER:-${MYSQL_USER:-}}"
password="${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}"

# sql_string VALUE: VALUE as a quoted SQL string literal.
sql_string() {
    printf "'%s'" "$(printf '%s' "$1" | sed -e "s/\\\\/\\\\\\\\/g" -e "s/'/''/g")"
}

if [ ! -d "$datadir/mysql" ]; then
    if [ -z "$root_password" ] && [ -z "$allow_empty" ]; then
        echo "items-mariadb: set MYSQL_ROOT_PASSWORD (or MYSQL_ALLOW_EMPTY_PASSWORD=yes)" >&2
        exit 1
    fi
    echo "items-mariadb: initialising $datadir"
    mariadb-install-db --datadir="$datadir" --skip-test-db --auth-root-authentication-method=normal \
        --skip-name-resolve >/dev/null
    {
        echo "FLUSH PRIVILEGES;"
        echo "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');"
        echo "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';"
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "$root_password");"
        echo "CREATE USER 'root'@'%' IDENTIFIED BY $(sql_string "$root_password");"
        echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
        if [ -n "$database" ]; then
            echo "CREATE DATABASE IF NOT EXISTS \`$database\`;"
        fi
        if [ -n "$user" ]; then
            echo "CREATE USER $(sql_string "$user")@'%' IDENTIFIED BY $(sql_string "$password");"
            if [ -n "$database" ]; then
                echo "GRANT ALL ON \`$database\`.* TO $(sql_string "$user")@'%';"
            fi
        fi
        echo "FLUSH PRIVILEGES;"
    } | mariadbd --datadir="$datadir" --bootstrap --skip-networking
    echo "items-mariadb: created${database:+ database $database}${user:+ and user $user}"
fi

exec mariadbd --datadir="$datadir" "$@"
