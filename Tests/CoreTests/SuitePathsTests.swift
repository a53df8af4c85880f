// SuitePaths and SuiteAccounts: the reference's defaults, each overridable.
import Core
import Testing

@Suite("SuitePaths")
struct SuitePathsTests {
    @Test("defaults with an empty environment")
    func defaults() {
        let p = SuitePaths(environment: Environment())
        #expect(p.sysconfDirectory == "/etc/indimail")
        #expect(p.controlDirectory == "/etc/indimail/control")
        #expect(p.assignDirectory == "/etc/indimail/users")
        #expect(p.qmailHome == "/var/indimail")
        #expect(p.queueBase == "/var/indimail/queue")
        #expect(p.queueDirectory == "/var/indimail/queue")
        #expect(p.serviceDirectory == "/service")
        #expect(p.runDirectory == "/run/svscan")
        #expect(p.logDirectory == "/var/log/svc")
        #expect(p.prefix == "/usr")
        #expect(p.libexecDirectory == "/usr/libexec/indimail")
    }

    @Test("CONTROLDIR relative to SYSCONFDIR, or absolute")
    func controlDirectory() {
        #expect(SuitePaths(environment: Environment([("CONTROLDIR", "ctl")])).controlDirectory == "/etc/indimail/ctl")
        #expect(SuitePaths(environment: Environment([("SYSCONFDIR", "/opt/x"), ("CONTROLDIR", "ctl/sub")])).controlDirectory
                == "/opt/x/ctl/sub")
        #expect(SuitePaths(environment: Environment([("SYSCONFDIR", "/opt/x/"), ("CONTROLDIR", "ctl")])).controlDirectory
                == "/opt/x/ctl")
        #expect(SuitePaths(environment: Environment([("SYSCONFDIR", "/opt/x"), ("CONTROLDIR", "/abs/control")])).controlDirectory
                == "/abs/control")
        #expect(SuitePaths(environment: Environment([("SYSCONFDIR", "/opt/x")])).controlDirectory == "/opt/x/control")
    }

    @Test("every override, and derived defaults following their base")
    func overrides() {
        let env = Environment([
            ("SYSCONFDIR", "/t/etc"), ("ASSIGNDIR", "/t/assign"), ("QMAILHOME", "/t/home"),
            ("SERVICEDIR", "/t/service"), ("SVSCAN_RUNDIR", "/t/run"), ("LOGDIR", "/t/log"), ("PREFIX", "/t/usr"),
        ])
        let p = SuitePaths(environment: env)
        #expect(p.sysconfDirectory == "/t/etc")
        #expect(p.controlDirectory == "/t/etc/control")
        #expect(p.assignDirectory == "/t/assign")
        #expect(p.qmailHome == "/t/home")
        #expect(p.queueBase == "/t/home/queue")
        #expect(p.queueDirectory == "/t/home/queue")
        #expect(p.serviceDirectory == "/t/service")
        #expect(p.runDirectory == "/t/run")
        #expect(p.logDirectory == "/t/log")
        #expect(p.libexecDirectory == "/t/usr/libexec/indimail")

        var more = env
        more["QUEUE_BASE"] = "/q/base"
        more["QUEUEDIR"] = "/q/dir"
        more["LIBEXECDIR"] = "/t/libexec"
        let q = SuitePaths(environment: more)
        #expect(q.queueBase == "/q/base")
        #expect(q.queueDirectory == "/q/dir")
        #expect(q.libexecDirectory == "/t/libexec")
        #expect(q.assignDirectory == "/t/assign")
        // Only SYSCONFDIR moves ASSIGNDIR's default.
        #expect(SuitePaths(environment: Environment([("SYSCONFDIR", "/s")])).assignDirectory == "/s/users")
    }

    @Test("empty values count as unset")
    func emptyIsUnset() {
        let p = SuitePaths(environment: Environment([("SYSCONFDIR", ""), ("CONTROLDIR", ""), ("QMAILHOME", "")]))
        #expect(p == SuitePaths(environment: Environment()))
    }

    @Test("SuiteAccounts: reference names, each overridable")
    func accounts() {
        let d = SuiteAccounts(environment: Environment())
        #expect([d.alias, d.qmaild, d.qmaill, d.qmailp, d.qmailq, d.qmailr, d.qmails, d.indimail]
                == ["alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails", "indimail"])
        #expect(d.qmailGroup == "qmail" && d.nofilesGroup == "nofiles")
        let o = SuiteAccounts(environment: Environment([("QMAILD_USER", "me"), ("QMAIL_GROUP", "grp"), ("QMAILR_USER", "")]))
        #expect(o.qmaild == "me")
        #expect(o.qmailGroup == "grp")
        #expect(o.qmailr == "qmailr")
    }
}
