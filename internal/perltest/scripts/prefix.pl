# prefix.pl SERVERS: do_task through clients with a function prefix,
# which Gearman::Client joins to the name with a tab ("ns\tupper") or
# with the prefix_separator given.
use strict;
use warnings;
use Gearman::Client;

$| = 1;
my $servers = [split /,/, $ARGV[0]];

for my $case (["tab", undef], ["dot", "."]) {
    my ($name, $separator) = @$case;
    my $client = Gearman::Client->new(
        job_servers => $servers,
        prefix      => "ns",
        (defined $separator ? (prefix_separator => $separator) : ()),
    );
    my $r = eval { $client->do_task(upper => "prefixed by $name", { timeout => 10 }) };
    if ($@) {
        my $err = $@ =~ s/\s+at \/.*//sr =~ s/\0/\\0/gr;
        print "$name: error: $err\n";
        next;
    }
    print "$name: ", (defined $r ? $$r : "undef"), "\n";
}
